"""ScalingPolicy orchestration: read the Deployment and Prometheus, decide (domain.scaling), write back."""
