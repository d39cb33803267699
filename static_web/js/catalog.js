// Look-ups that several pages share: sensor types and their measures, sensors with
// their type, location schemas, models. Each is one or a few API calls.

import { get, post } from "./api.js";

/** `[{name, description, measures: [{name, units, datatype}]}]` */
export function listSensorTypes() {
  return get("/sensor/list-sensor-types");
}

/** `[{name, units, datatype}]` */
export function listMeasures() {
  return get("/sensor/list-measures");
}

/** `[{type_name, name, units, expression, inputs: {variable: measure_name}}]` */
export function listDerivedMeasures() {
  return post("/sensor/list-derived-measures", {});
}

/** Each type's stored measures followed by its derived ones, read like floats. */
export async function listSensorTypesWithDerived() {
  const [types, derived] = await Promise.all([listSensorTypes(), listDerivedMeasures()]);
  return types.map((type) => ({
    ...type,
    measures: [
      ...type.measures,
      ...derived.filter((d) => d.type_name === type.name).map((d) => ({ name: d.name, units: d.units, datatype: "float", derived: d })),
    ],
  }));
}

/** Key for a (name, units) pair; null units are a value like any other. */
export function measureKey(name, units) {
  return `${name}\u0000${units ?? "\u0001"}`;
}

/** Human label for a measure: "temperature (°C)". */
export function measureLabel(measure) {
  return measure.units ? `${measure.name} (${measure.units})` : measure.name;
}

/** Sensors of every type, each with `type_name` added, in type then insertion order. */
export async function listSensorsWithTypes(types = null) {
  const sensorTypes = types || (await listSensorTypes());
  const lists = await Promise.all(
    sensorTypes.map((type) => post("/sensor/list-sensors", { type_name: type.name })),
  );
  return sensorTypes.flatMap((type, i) => lists[i].map((sensor) => ({ ...sensor, type_name: type.name })));
}

/** `[{name, description, identifiers: [{name, units, datatype}]}]` */
export function listLocationSchemas() {
  return get("/location/list-location-schemas");
}

/** `[{name, units, datatype}]` */
export function listLocationIdentifiers() {
  return get("/location/list-location-identifiers");
}

/** `[{name}]` */
export function listModels() {
  return get("/model/list-models");
}

/** `[{model_name, description}]` */
export function listScenarios() {
  return get("/model/list-model-scenarios");
}

/** Every run of every model between two instants, newest first. */
export async function listAllModelRuns(dtFrom, dtTo, models = null) {
  const all = models || (await listModels());
  const lists = await Promise.all(
    all.map((model) =>
      post("/model/list-model-runs", { model_name: model.name, dt_from: dtFrom.toISOString(), dt_to: dtTo.toISOString() }),
    ),
  );
  return lists.flat().sort((a, b) => new Date(b.time_created) - new Date(a.time_created) || b.id - a.id);
}
