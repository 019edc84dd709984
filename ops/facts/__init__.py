"""Facts read from what the tools print, with no I/O: option values (`values`), a Compose
project and its containers (`compose`), a Swarm service's rollout (`rollout`) and a
deployed stack's services, tasks and nodes with the verdicts on them (`swarm_stack`)."""
