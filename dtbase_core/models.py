"""Models, scenarios, measures and runs (docs/api.md, Models and Model runs).

Fixes of DTBase's defects: every failure is a 4xx naming the row or field (item 1); measures
are looked up by name and an ambiguous name is refused rather than guessed (item 4); a
null scenario description is a value like any other (item 5); every value is checked
(item 7); an empty values list is a product with no values (item 9); runs can be deleted
and block the deletion of what they use with a 409 (item 14).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from dtbase_core.errors import AlreadyExists, Conflict, Invalid, NotFound
from dtbase_core.orm import (
    Datatype,
    Model,
    ModelMeasure,
    ModelProduct,
    ModelRun,
    ModelScenario,
    Sensor,
    SensorMeasure,
    model_value_tables,
)
from dtbase_core.orm.base import VALUE_COLUMN_TYPES, UtcDateTime
from dtbase_core.schemas.models import ProductIn, SensorMeasureRef
from dtbase_core.sensors import find_sensor_id
from dtbase_core.timeutil import utcnow
from dtbase_core.values import check_values

DEFAULT_RUNS_WINDOW = timedelta(days=7)


def _quoted(text: str | None) -> str:
    """A name or description as a message shows it; a null one as `null`."""
    return "null" if text is None else f"'{text}'"


def _runs(count: int) -> str:
    return f"{count} model run{'' if count == 1 else 's'}"


def _model_id(session: Session, name: str) -> int:
    model_id = session.scalar(sa.select(Model.id).where(Model.name == name))
    if model_id is None:
        raise NotFound(f"Model '{name}' does not exist")
    return model_id


# --- models -------------------------------------------------------------------------------


def insert_model(session: Session, *, name: str) -> None:
    inserted = session.execute(
        insert(Model).values(name=name).on_conflict_do_nothing().returning(Model.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists("Model exists already")


def list_models(session: Session) -> list[dict[str, Any]]:
    return [{"name": name} for name in session.scalars(sa.select(Model.name).order_by(Model.id))]


def delete_model(session: Session, *, name: str) -> None:
    """Delete a model and (by cascade) its scenarios; refused while it has runs."""
    found = session.execute(
        sa.select(Model.id, sa.func.count(ModelRun.id))
        .outerjoin(ModelRun, ModelRun.model_id == Model.id)
        .where(Model.name == name)
        .group_by(Model.id)
    ).first()
    if found is None:
        raise NotFound(f"Model '{name}' does not exist")
    model_id, runs = found
    if runs:
        raise Conflict(f"Model '{name}' still has {_runs(runs)}; delete them first")
    session.execute(sa.delete(Model).where(Model.id == model_id))


# --- scenarios ----------------------------------------------------------------------------


def insert_model_scenario(session: Session, *, model_name: str, description: str | None) -> None:
    inserted = session.execute(
        insert(ModelScenario)
        .from_select(
            ["model_id", "description"],
            sa.select(Model.id, sa.literal(description, sa.Text)).where(Model.name == model_name),
        )
        .on_conflict_do_nothing()
        .returning(ModelScenario.id)
    ).scalar()
    if inserted is None:
        _model_id(session, model_name)  # NotFound when it is the model that is missing
        raise AlreadyExists("Scenario exists already")


def list_model_scenarios(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(Model.name, ModelScenario.description)
        .join(Model, Model.id == ModelScenario.model_id)
        .order_by(ModelScenario.id)
    )
    return [{"model_name": name, "description": description} for name, description in rows]


def delete_model_scenario(session: Session, *, model_name: str, description: str | None) -> None:
    """Delete the one scenario with exactly this description (null included)."""
    found = session.execute(
        sa.select(Model.id, ModelScenario.id, sa.func.count(ModelRun.id))
        .outerjoin(
            ModelScenario,
            (ModelScenario.model_id == Model.id)
            & ModelScenario.description.is_not_distinct_from(description),
        )
        .outerjoin(ModelRun, ModelRun.scenario_id == ModelScenario.id)
        .where(Model.name == model_name)
        .group_by(Model.id, ModelScenario.id)
    ).first()
    if found is None:
        raise NotFound(f"Model '{model_name}' does not exist")
    _, scenario_id, runs = found
    if scenario_id is None:
        raise NotFound(
            f"Model scenario {_quoted(description)} of model '{model_name}' does not exist"
        )
    if runs:
        raise Conflict(
            f"Model scenario {_quoted(description)} of model '{model_name}' still has "
            f"{_runs(runs)}; delete them first"
        )
    session.execute(sa.delete(ModelScenario).where(ModelScenario.id == scenario_id))


# --- measures -----------------------------------------------------------------------------


def insert_model_measure(session: Session, *, name: str, units: str, datatype: Datatype) -> None:
    inserted = session.execute(
        insert(ModelMeasure)
        .values(name=name, units=units, datatype=datatype)
        .on_conflict_do_nothing()
        .returning(ModelMeasure.id)
    ).scalar()
    if inserted is None:
        raise AlreadyExists("Model measure exists already")


def list_model_measures(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(ModelMeasure.name, ModelMeasure.units, ModelMeasure.datatype).order_by(
            ModelMeasure.id
        )
    )
    return [
        {"name": name, "units": units, "datatype": datatype.value} for name, units, datatype in rows
    ]


def delete_model_measure(session: Session, *, name: str) -> None:
    """Delete every measure with this name (DTBase's rule); refused while products use one."""
    found = session.execute(
        sa.select(sa.func.count(sa.distinct(ModelMeasure.id)), sa.func.count(ModelProduct.id))
        .outerjoin(ModelProduct, ModelProduct.measure_id == ModelMeasure.id)
        .where(ModelMeasure.name == name)
    ).one()
    measures, products = found
    if not measures:
        raise NotFound(f"Model measure '{name}' does not exist")
    if products:
        raise Conflict(
            f"Model measure '{name}' is used by {products} model "
            f"product{'' if products == 1 else 's'} (of model runs); delete those runs first"
        )
    session.execute(sa.delete(ModelMeasure).where(ModelMeasure.name == name))


# --- runs ---------------------------------------------------------------------------------


def _scenario_id(
    session: Session, model_id: int, model_name: str, description: str, create: bool
) -> int:
    scenario_id = session.scalar(
        sa.select(ModelScenario.id).where(
            ModelScenario.model_id == model_id, ModelScenario.description == description
        )
    )
    if scenario_id is not None:
        return scenario_id
    if not create:
        raise NotFound(
            f"Model scenario '{description}' of model '{model_name}' does not exist "
            "(send create_scenario: true to create it)"
        )
    created = session.execute(
        insert(ModelScenario)
        .values(model_id=model_id, description=description)
        .on_conflict_do_nothing()
        .returning(ModelScenario.id)
    ).scalar()
    # None only if a concurrent request created it in between: read that one.
    return (
        created
        if created is not None
        else _scenario_id(session, model_id, model_name, description, create=False)
    )


def _sensor_measure_id(session: Session, measure: SensorMeasureRef) -> int:
    measure_id = session.scalar(
        sa.select(SensorMeasure.id).where(
            SensorMeasure.name == measure.name,
            SensorMeasure.units.is_not_distinct_from(measure.units),
        )
    )
    if measure_id is None:
        raise NotFound(
            f"Sensor measure '{measure.name}' with units {_quoted(measure.units)} does not exist"
        )
    return measure_id


def _check_products(
    session: Session, products: Sequence[ProductIn]
) -> list[tuple[int, Datatype, list[Any]]]:
    """(measure id, datatype, checked values) per product, or the error naming the field.

    Measures are found by name in one query; a name shared by measures of different
    units is refused as ambiguous rather than guessed (docs/api.md, Names and units together).
    """
    seen: dict[str, int] = {}
    for index, product in enumerate(products):
        loc = ("body", "measures_and_values", index)
        if product.measure_name in seen:
            raise Invalid(
                f"measures_and_values.{index}.measure_name: measure "
                f"'{product.measure_name}' is already given at index "
                f"{seen[product.measure_name]}; a run has one product per measure",
                loc=(*loc, "measure_name"),
            )
        seen[product.measure_name] = index
        if len(product.values) != len(product.timestamps):
            raise Invalid(
                f"measures_and_values.{index}: values and timestamps must have the same "
                f"length ({len(product.values)} != {len(product.timestamps)})",
                loc=(*loc, "timestamps"),
            )
    measures: dict[str, list[tuple[int, str, Datatype]]] = defaultdict(list)
    if seen:
        rows = session.execute(
            sa.select(ModelMeasure.name, ModelMeasure.id, ModelMeasure.units, ModelMeasure.datatype)
            .where(ModelMeasure.name.in_(list(seen)))
            .order_by(ModelMeasure.id)
        )
        for name, measure_id, units, datatype in rows:
            measures[name].append((measure_id, units, datatype))
    checked = []
    for index, product in enumerate(products):
        found = measures.get(product.measure_name)
        if not found:
            raise NotFound(f"Model measure '{product.measure_name}' does not exist")
        if len(found) > 1:
            units = ", ".join(f"'{u}'" for _, u, _ in found)
            raise Invalid(
                f"measures_and_values.{index}.measure_name: model measure name "
                f"'{product.measure_name}' is ambiguous (it exists with units {units})",
                loc=("body", "measures_and_values", index, "measure_name"),
            )
        measure_id, _, datatype = found[0]
        values = check_values(product.values, datatype, ("measures_and_values", index, "values"))
        checked.append((measure_id, datatype, values))
    return checked


def _insert_values(
    session: Session, datatype: Datatype, rows: tuple[list[int], list[datetime], list[Any]]
) -> None:
    """All values of one datatype in one statement: three arrays, unnested."""
    table = model_value_tables[datatype]
    product_ids, timestamps, values = rows
    arrays = (
        sa.func.unnest(
            sa.cast(sa.bindparam("product_ids", product_ids, ARRAY(sa.Integer)), ARRAY(sa.Integer)),
            sa.cast(sa.bindparam("timestamps", timestamps, ARRAY(UtcDateTime)), ARRAY(UtcDateTime)),
            sa.cast(
                sa.bindparam("values", values, ARRAY(VALUE_COLUMN_TYPES[datatype])),
                ARRAY(VALUE_COLUMN_TYPES[datatype]),
            ),
        )
        .table_valued("product_id", "timestamp", "value")
        .render_derived("new_values")
    )
    session.execute(
        insert(table)
        .from_select(
            ["product_id", "timestamp", "value"],
            sa.select(arrays.c.product_id, arrays.c.timestamp, arrays.c.value),
        )
        .on_conflict_do_nothing()
    )


def insert_model_run(
    session: Session,
    *,
    model_name: str,
    scenario_description: str,
    measures_and_values: Sequence[ProductIn],
    time_created: datetime | None = None,
    create_scenario: bool = False,
    sensor_unique_id: str | None = None,
    sensor_measure: SensorMeasureRef | None = None,
    metrics: dict[str, Any] | None = None,
) -> int:
    """Insert a run and its products; the run's id. All or nothing (one transaction).

    DTBase's order (scenario, sensor, run, products), with the model first so that an
    unknown model is reported as such. A repeated timestamp in one product keeps the
    first value, as DTBase's ON CONFLICT DO NOTHING does.
    """
    model_id = _model_id(session, model_name)
    scenario_id = _scenario_id(session, model_id, model_name, scenario_description, create_scenario)
    sensor_id = find_sensor_id(session, sensor_unique_id) if sensor_unique_id is not None else None
    sensor_measure_id = (
        _sensor_measure_id(session, sensor_measure) if sensor_measure is not None else None
    )
    products = _check_products(session, measures_and_values)

    created_at = time_created or utcnow()
    run_id = session.execute(
        insert(ModelRun)
        .values(
            model_id=model_id,
            scenario_id=scenario_id,
            time_created=created_at,
            sensor_id=sensor_id,
            sensor_measure_id=sensor_measure_id,
            metrics=metrics,
        )
        .on_conflict_do_nothing()
        .returning(ModelRun.id)
    ).scalar()
    if run_id is None:
        raise AlreadyExists(
            f"A run of model '{model_name}' for scenario '{scenario_description}' created "
            f"at {created_at.isoformat()} exists already"
        )
    if not products:
        return run_id

    inserted = session.execute(
        insert(ModelProduct)
        .values([{"run_id": run_id, "measure_id": m} for m, _, _ in products])
        .returning(ModelProduct.measure_id, ModelProduct.id)
    )
    product_ids = {measure_id: product_id for measure_id, product_id in inserted}
    by_datatype: dict[Datatype, tuple[list[int], list[datetime], list[Any]]] = {}
    for (measure_id, datatype, values), product in zip(products, measures_and_values, strict=True):
        if not values:
            continue
        ids, timestamps, all_values = by_datatype.setdefault(datatype, ([], [], []))
        ids.extend([product_ids[measure_id]] * len(values))
        timestamps.extend(product.timestamps)
        all_values.extend(values)
    for datatype, rows in by_datatype.items():
        _insert_values(session, datatype, rows)
    return run_id


def list_model_runs(
    session: Session,
    *,
    model_name: str,
    dt_from: datetime | None = None,
    dt_to: datetime | None = None,
    scenario: str | None = None,
) -> list[dict[str, Any]]:
    """Runs of a model created in [dt_from, dt_to] (default: the last 7 days), in the
    order they were inserted; an unknown model has none."""
    now = utcnow()
    query = (
        sa.select(
            ModelRun.id,
            ModelRun.model_id,
            Model.name,
            ModelRun.scenario_id,
            ModelScenario.description,
            ModelRun.time_created,
            Sensor.unique_identifier,
            SensorMeasure.name,
            SensorMeasure.units,
            ModelRun.metrics,
        )
        .join(Model, Model.id == ModelRun.model_id)
        .outerjoin(ModelScenario, ModelScenario.id == ModelRun.scenario_id)
        .outerjoin(Sensor, Sensor.id == ModelRun.sensor_id)
        .outerjoin(SensorMeasure, SensorMeasure.id == ModelRun.sensor_measure_id)
        .where(
            Model.name == model_name,
            ModelRun.time_created >= (dt_from or now - DEFAULT_RUNS_WINDOW),
            ModelRun.time_created <= (dt_to or now),
        )
        .order_by(ModelRun.id)
    )
    if scenario is not None:
        query = query.where(ModelScenario.description == scenario)
    return [
        {
            "id": run_id,
            "model_id": model_id,
            "model_name": name,
            "scenario_id": scenario_id,
            "scenario_description": description,
            "time_created": time_created,
            "sensor_unique_id": sensor_unique_id,
            "sensor_measure": _sensor_measure(measure_name, measure_units),
            # Only runs stored with metrics have the key: the others list DTBase's keys.
            **({"metrics": metrics} if metrics is not None else {}),
        }
        for (
            run_id,
            model_id,
            name,
            scenario_id,
            description,
            time_created,
            sensor_unique_id,
            measure_name,
            measure_units,
            metrics,
        ) in session.execute(query)
    ]


def _sensor_measure(name: str | None, units: str | None) -> dict[str, Any] | None:
    """Null when the run names no sensor measure (its name and units both null)."""
    if name is None and units is None:
        return None
    return {"name": name, "units": units}


def _run_values() -> sa.Subquery:
    """Every model value, one typed column per datatype (the others null), so that one
    query reads a whole run whatever its measures' datatypes."""
    selects = []
    for datatype, table in model_value_tables.items():
        columns = [
            (
                table.c.value
                if other is datatype
                else sa.cast(sa.null(), VALUE_COLUMN_TYPES[other])
            ).label(f"{other.value}_value")
            for other in Datatype
        ]
        selects.append(sa.select(table.c.product_id, table.c.timestamp, *columns))
    return sa.union_all(*selects).subquery("run_values")


def get_model_run(session: Session, *, run_id: int) -> dict[str, list[dict[str, Any]]]:
    """`{measure name: [{value, timestamp}...]}` per product, ascending by timestamp; `{}`
    for an unknown run (DTBase's reply, kept)."""
    values = _run_values()
    rows = session.execute(
        sa.select(
            ModelMeasure.name,
            ModelMeasure.datatype,
            values.c.timestamp,
            *(values.c[f"{datatype.value}_value"] for datatype in Datatype),
        )
        .select_from(ModelProduct)
        .join(ModelMeasure, ModelMeasure.id == ModelProduct.measure_id)
        .outerjoin(values, values.c.product_id == ModelProduct.id)
        .where(ModelProduct.run_id == run_id)
        .order_by(ModelProduct.id, values.c.timestamp)
    )
    column = {datatype: 3 + i for i, datatype in enumerate(Datatype)}
    result: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        series = result.setdefault(row[0], [])
        if row[2] is not None:
            series.append({"value": row[column[row[1]]], "timestamp": row[2]})
    return result


def get_model_run_sensor_measure(session: Session, *, run_id: int) -> dict[str, Any]:
    found = session.execute(
        sa.select(Sensor.unique_identifier, SensorMeasure.name, SensorMeasure.units)
        .select_from(ModelRun)
        .outerjoin(Sensor, Sensor.id == ModelRun.sensor_id)
        .outerjoin(SensorMeasure, SensorMeasure.id == ModelRun.sensor_measure_id)
        .where(ModelRun.id == run_id)
    ).first()
    if found is None:
        raise NotFound("No such model run")
    unique_id, name, units = found
    return {"sensor_unique_id": unique_id, "sensor_measure": _sensor_measure(name, units)}


def delete_model_run(session: Session, *, run_id: int) -> None:
    """Delete a run; its products and their values go by cascade."""
    deleted = session.execute(
        sa.delete(ModelRun).where(ModelRun.id == run_id).returning(ModelRun.id)
    ).scalar()
    if deleted is None:
        raise NotFound("No such model run")
