"""Installation settings come from TSO_* variables through the pydantic model.

Covers: a variable is parsed into the field's type, an unset one keeps its default, a bad value is one error
naming the variable (what the user edits), explicit keyword arguments win over the environment.
"""

from __future__ import annotations

import pytest

from tradesense_operator.config import Settings


def test_variables_are_parsed_into_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSO_STEP_POLL_SECONDS", "0.5")
    monkeypatch.setenv("TSO_LOG_FORMAT", "json")
    monkeypatch.delenv("TSO_HTTP_PORT", raising=False)
    settings = Settings.from_env()
    assert settings.step_poll_seconds == 0.5
    assert settings.log_format == "json"
    assert settings.http_port == 8081


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSO_HTTP_PORT", "70000")
    monkeypatch.setenv("TSO_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="invalid operator settings") as caught:
        Settings.from_env()
    assert "TSO_HTTP_PORT" in str(caught.value)
    assert "TSO_LOG_LEVEL" in str(caught.value)


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSO_LOCK_LEASE_SECONDS", "120")
    assert Settings(lock_lease_seconds=15).lock_lease_seconds == 15
    assert Settings().lock_lease_seconds == 120


def test_variable_names_are_case_insensitive_and_other_tso_variables_are_not_ours(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("tso_lock_lease_seconds", "90")
    monkeypatch.setenv("TSO_BENCH_SIZE_MB", "1000")  # a benchmark's variable, not a setting
    assert Settings.from_env().lock_lease_seconds == 90
