"""The four stages, each a small module computing one result from its inputs and the store.

``align`` (photo -> aligned faces), ``invert`` (aligned face -> pivot ws + tuned generator),
``edit`` (inverted face -> dragged ws + images), ``composite`` (edits -> output photo);
``common`` holds the run context and the cached-or-computed wrapper every stage uses.
(Nothing heavy is imported here, so the CLI starts fast.)
"""

STAGES = ("align", "invert", "edit", "composite")  # run order

__all__ = ["STAGES"]
