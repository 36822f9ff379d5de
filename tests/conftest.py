"""Root conftest: shared fixtures live in tests/support/ modules, one concern each."""

pytest_plugins = [
    "tests.support.secrets",  # first: other fixture modules import its SecretGuard
    "tests.support.kube",
    "tests.support.rbac",
    "tests.support.services",
    "tests.support.app",
]
