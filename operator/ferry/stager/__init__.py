"""The stager: the program in Ferry's staging init containers and archive pods.

`python3 -m ferry.stager setup --bin DIR | stage-in | archive` (see __main__.py). Modules:
settings (paths and limits from the environment), inputs (stage-in of each source kind),
http (safe download), workspace (safe selection of files under a root), globs (patterns),
archive (parallel upload with retries), manifest (manifest.json), store (S3 client from the
environment, retry policy), setup (workspace dirs and the launcher), errors (the
expected-failure exception).
"""
