"""Blue-green deploys to Swarm (in progress: the deploy lock)."""
