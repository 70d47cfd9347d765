"""``dragpipe edit``: a local web page that drives the pipeline's own jobs and store.

- ``spec_text``: writes the page's edits into the spec file, keeping everything else;
- ``forms``: the request bodies the page sends and how its edits become spec edits;
- ``session``: ``EditorSession``, the operations (open a photo, invert, drag, stop, save)
  as jobs of the spec's ``JobGraph`` on the spec's store;
- ``work``: the worker thread, jobs with event streams, one job per face at a time;
- ``server``: the HTTP server on 127.0.0.1 (token, limits, no paths from requests);
- ``static/``: the page (plain HTML, CSS and JavaScript; no build step, nothing fetched
  from elsewhere).
"""
