"""`inv audit`: the seeds' best-practice checklist as a linter of compose files,
Dockerfiles and CI pipelines. Rules and checks are pure; `load` does the I/O."""
