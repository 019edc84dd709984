"""Blue-green deploys to Swarm: the stack rendered from compose.yaml (translate,
stackfile), the deploy lock, rollouts read from Swarm (converge), and the flows that
run them on a manager (flow, session)."""
