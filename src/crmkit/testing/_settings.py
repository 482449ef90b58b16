"""Hypothesis settings shared by the conformance suite's modules."""

from __future__ import annotations

from hypothesis import HealthCheck

# The suite is a mixin: one test method runs from one subclass per backend, each with its own
# fresh `crm` fixture per example, hence differing_executors and function_scoped_fixture.
SUITE_HEALTH_CHECKS = (
    HealthCheck.function_scoped_fixture,
    HealthCheck.differing_executors,
    HealthCheck.too_slow,
)
