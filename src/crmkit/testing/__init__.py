"""Testing support shipped with crmkit.

- :mod:`crmkit.testing.conformance`: :class:`~crmkit.testing.conformance.ConformanceSuite`,
  the behaviour tests every backend must pass (subclass it and provide a ``crm`` fixture);
- :mod:`crmkit.testing.reference`: the brute-force query evaluator the differential tests
  compare backends with;
- :mod:`crmkit.testing.strategies`: hypothesis strategies for entities, filters and orders;
- :mod:`crmkit.testing.plugin`: the pytest plugin (loaded automatically once crmkit is
  installed) that gives every test a ``crm`` fixture on ``memory://``.

The submodules need the ``dev`` extra (pytest, hypothesis); importing this package does not.
"""
