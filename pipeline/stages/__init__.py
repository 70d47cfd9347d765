"""The four stages, each a module defining its task: the parameters of one job of that stage
and the function that computes its result (``pipeline.jobs.Task``).

``align`` (photo -> aligned faces, ``AlignTask``), ``invert`` (aligned face -> pivot ws +
tuned generator, ``InvertTask``), ``edit`` (inverted face -> dragged ws + images,
``EditTask``), ``composite`` (edits -> output photo, ``CompositeTask``). ``context`` is what
a compute function gets besides its task, ``generators`` the run's base and tuned
generators, ``tuned`` the tuned generator's file format, ``images`` the PNG helpers.
(Nothing heavy is imported here, so the CLI starts fast.)
"""

STAGES = ("align", "invert", "edit", "composite")  # run order

__all__ = ["STAGES"]
