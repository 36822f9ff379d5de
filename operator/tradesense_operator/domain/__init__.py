"""Pure decisions: runbook plans, the step state machine, retention, schedules, scaling.

Purely data-manipulative and computational: no I/O, no kopf, no clients. Every function here is
table-testable with a controllable clock passed in as an argument.
"""
