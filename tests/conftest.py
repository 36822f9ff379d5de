"""Root conftest: shared fixtures live in tests/support/ modules, one concern each."""

pytest_plugins = [
    "tests.support.kube",
    "tests.support.services",
    "tests.support.app",
    "tests.support.secrets",
]
