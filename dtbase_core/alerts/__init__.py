"""Alert rules, their state machine, the evaluator and the backtest (docs/architecture.md,
Alerts). Nothing here knows of Azure: function_app/alerts.py calls `rules` (saving rules),
`lifecycle` (listing and acknowledging alerts), `evaluator` (the timer's tick and
evaluate-alerts) and `backtest`."""
