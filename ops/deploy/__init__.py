"""Blue-green deploys to Swarm: the stack rendered from compose.yaml (translate,
stackfile), the deploy lock, and the flows that run them on a manager (flow, session);
rollouts are read from Swarm by ops/facts/rollout.py."""
