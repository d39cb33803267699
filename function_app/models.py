"""/model: models, scenarios, measures and runs (docs/api.md, Models;
Extensions)."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from dtbase_core import models
from dtbase_core.apikeys import Scope
from dtbase_core.roles import Role
from dtbase_core.schemas.models import (
    ListModelRunsIn,
    MeasureNameIn,
    ModelMeasureIn,
    ModelMeasureOut,
    ModelNameIn,
    ModelOut,
    ModelRunIn,
    ModelRunOut,
    ModelScenarioIn,
    ModelScenarioOut,
    RunIdIn,
    RunSensorMeasure,
    RunValue,
)
from function_app.http import Call, endpoint

bp = func.Blueprint()


@endpoint(
    bp, "model/insert-model", body=ModelNameIn, status=201, errors={409: "Model exists already"}
)
def insert_model(call: Call[ModelNameIn]) -> Any:
    """Create a model: a unique name."""
    models.insert_model(call.session, name=call.body.name)
    return {"detail": "Model inserted"}


@endpoint(
    bp,
    "model/list-models",
    method="GET",
    response=list[ModelOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_models(call: Call[None]) -> Any:
    """Every model, in the order they were created."""
    return models.list_models(call.session)


@endpoint(
    bp,
    "model/delete-model",
    body=ModelNameIn,
    errors={
        400: "Model '<name>' does not exist",
        409: "Model '<name>' still has <n> model runs; delete them first",
    },
)
def delete_model(call: Call[ModelNameIn]) -> Any:
    """Delete a model and its scenarios; refused while it has runs."""
    models.delete_model(call.session, name=call.body.name)
    return {"detail": "Model deleted"}


@endpoint(
    bp,
    "model/insert-model-scenario",
    body=ModelScenarioIn,
    status=201,
    errors={400: "Model '<name>' does not exist", 409: "Scenario exists already"},
)
def insert_model_scenario(call: Call[ModelScenarioIn]) -> Any:
    """Create a scenario of a model: a description unique per model (null is one value)."""
    models.insert_model_scenario(call.session, **call.body.model_dump())
    return {"detail": "Model scenario inserted"}


@endpoint(
    bp,
    "model/list-model-scenarios",
    method="GET",
    response=list[ModelScenarioOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_model_scenarios(call: Call[None]) -> Any:
    """Every scenario with its model's name, in the order they were created."""
    return models.list_model_scenarios(call.session)


@endpoint(
    bp,
    "model/delete-model-scenario",
    body=ModelScenarioIn,
    errors={
        400: "Model or model scenario does not exist",
        409: "The scenario still has model runs",
    },
)
def delete_model_scenario(call: Call[ModelScenarioIn]) -> Any:
    """Delete the scenario with exactly this description; refused while it has runs."""
    models.delete_model_scenario(call.session, **call.body.model_dump())
    return {"detail": "Model scenario deleted"}


@endpoint(
    bp,
    "model/insert-model-measure",
    body=ModelMeasureIn,
    status=201,
    errors={409: "Model measure exists already"},
)
def insert_model_measure(call: Call[ModelMeasureIn]) -> Any:
    """Create a model measure: (name, units) with a datatype."""
    models.insert_model_measure(call.session, **call.body.model_dump())
    return {"detail": "Model measure inserted"}


@endpoint(
    bp,
    "model/list-model-measures",
    method="GET",
    response=list[ModelMeasureOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_model_measures(call: Call[None]) -> Any:
    """Every model measure, in the order they were created."""
    return models.list_model_measures(call.session)


@endpoint(
    bp,
    "model/delete-model-measure",
    body=MeasureNameIn,
    errors={
        400: "Model measure '<name>' does not exist",
        409: "Model measure '<name>' is used by <n> model products",
    },
)
def delete_model_measure(call: Call[MeasureNameIn]) -> Any:
    """Delete every model measure with this name; refused while runs use one."""
    models.delete_model_measure(call.session, name=call.body.name)
    return {"detail": "Model measure deleted"}


@endpoint(
    bp,
    "model/insert-model-run",
    body=ModelRunIn,
    status=201,
    errors={
        400: "A model, scenario, sensor, sensor measure or model measure does not exist",
        409: "A run of this model and scenario created at that time exists already",
    },
)
def insert_model_run(call: Call[ModelRunIn]) -> Any:
    """Record a model run and its products (measures found by name), all or nothing."""
    models.insert_model_run(call.session, **dict(call.body))
    return {"detail": "Model run inserted"}


@endpoint(
    bp,
    "model/list-model-runs",
    body=ListModelRunsIn,
    response=list[ModelRunOut],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def list_model_runs(call: Call[ListModelRunsIn]) -> Any:
    """Runs of a model created between dt_from and dt_to (default: the last 7 days)."""
    return models.list_model_runs(call.session, **call.body.model_dump())


@endpoint(
    bp,
    "model/get-model-run",
    body=RunIdIn,
    response=dict[str, list[RunValue]],
    role=Role.VIEWER,
    scope=Scope.READ,
)
def get_model_run(call: Call[RunIdIn]) -> Any:
    """A run's values by measure name, ascending by timestamp; `{}` for an unknown run."""
    return models.get_model_run(call.session, run_id=call.body.run_id)


@endpoint(
    bp,
    "model/get-model-run-sensor-measure",
    body=RunIdIn,
    response=RunSensorMeasure,
    errors={400: "No such model run"},
    role=Role.VIEWER,
    scope=Scope.READ,
)
def get_model_run_sensor_measure(call: Call[RunIdIn]) -> Any:
    """The sensor and sensor measure a run compares against (null when none)."""
    return models.get_model_run_sensor_measure(call.session, run_id=call.body.run_id)


@endpoint(bp, "model/delete-model-run", body=RunIdIn, errors={400: "No such model run"})
def delete_model_run(call: Call[RunIdIn]) -> Any:
    """Delete a model run with its products and their values."""
    models.delete_model_run(call.session, run_id=call.body.run_id)
    return {"detail": "Model run deleted"}
