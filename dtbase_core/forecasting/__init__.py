"""ARIMA forecasting (docs/api.md, Forecasts): configuration (`config`, light), the data pipeline
(`data`) and the model (`arima`), and the per-series job that reads, fits and stores
(`runs`). Only `config` may be imported on the HTTP path: the others use pandas and
statsmodels, which an activity imports when it runs.
"""
