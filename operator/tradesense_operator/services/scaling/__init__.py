"""ScalingPolicy orchestration: read the Deployment and Prometheus, decide (domain.scaling), write back.

Must not hold the scaling arithmetic itself, nor import kopf (handlers.scaling wires it).
"""
