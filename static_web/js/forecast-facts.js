// What a model run page says about a forecast beside its chart: the metrics the ARIMA
// forecast stores with its run (dtbase_core/forecasting/runs.py) and where the forecast
// starts, with DTBase's reason.

import { el } from "./dom.js";
import { formatTime, timeZoneName } from "./format.js";

const HOUR = 3600e3;

function number(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? String(Number(value.toPrecision(digits))) : "not computed";
}

function tile(key, label, value, hint) {
  return el(
    "div",
    { class: "stat", dataset: { metric: key } },
    el("span", { class: "number", text: value }),
    el("span", { class: "label", text: label }),
    hint ? el("span", { class: "hint", text: hint }) : null,
  );
}

/**
 * The run's metrics as tiles: RMSE (in the measure's units), MAPE (a fraction, shown as a
 * percentage), training and imputed points; null when the run was stored without metrics.
 */
export function metricsView(metrics, units = "") {
  if (!metrics || typeof metrics !== "object" || !Object.keys(metrics).length) return null;
  const folds = metrics.cv_folds ? `mean over ${metrics.cv_folds} cross-validation folds of ${metrics.cv_test_size} points` : "";
  const tiles = [];
  if ("RMSE" in metrics || "MAPE" in metrics) {
    tiles.push(tile("RMSE", `RMSE${units ? ` (${units})` : ""}`, number(metrics.RMSE), folds));
    const mape = typeof metrics.MAPE === "number" && Number.isFinite(metrics.MAPE) ? `${number(metrics.MAPE * 100)} %` : "not computed";
    tiles.push(tile("MAPE", "MAPE", mape, folds));
  }
  if ("training_points" in metrics) tiles.push(tile("training_points", "Training points", String(metrics.training_points), "hours the model was fitted on"));
  if ("imputed_points" in metrics) {
    const share = metrics.training_points ? ` (${number((100 * metrics.imputed_points) / metrics.training_points, 2)} %)` : "";
    tiles.push(tile("imputed_points", "Imputed points", `${metrics.imputed_points}${share}`, "missing hours filled in before fitting"));
  }
  return el(
    "div",
    { class: "run-metrics" },
    tiles.length ? el("div", { class: "stats" }, tiles) : null,
    metrics.cv_error ? el("p", { class: "notice warning", text: `Cross-validation failed, so there is no RMSE or MAPE: ${metrics.cv_error}` }) : null,
  );
}

/**
 * Where the forecast starts and why. `times` are the mean's timestamps (ms). For a run of
 * the ARIMA forecast (its metrics count training points), the reason: DTBase trains up to
 * the farm-cycle cutoff, not up to the time it was asked to predict from.
 */
export function forecastStartView(times, metrics) {
  if (!times.length) return null;
  const first = times[0];
  const last = times[times.length - 1];
  const step = times.length > 1 ? times[1] - times[0] : HOUR;
  const zone = timeZoneName();
  const span = el(
    "p",
    { class: "forecast-window" },
    "The forecast runs from ",
    el("time", { datetime: new Date(first).toISOString(), text: formatTime(first) }),
    " to ",
    el("time", { datetime: new Date(last).toISOString(), text: formatTime(last) }),
    ` (${zone}), ${times.length} point${times.length === 1 ? "" : "s"}${step === HOUR ? " an hour apart" : ""}.`,
  );
  if (!metrics || !("training_points" in metrics)) return el("div", { class: "forecast-start" }, span);
  const cutoff = first - step;
  return el(
    "div",
    { class: "forecast-start notice" },
    span,
    el(
      "p",
      { class: "forecast-why" },
      "Why it starts there: as in DTBase, the model is trained only on readings up to the farm-cycle cutoff, the end of the last whole half farm cycle before the newest reading (16:00 and 04:00 UTC with the default cycle start of 16:00). Training ended at ",
      el("time", { class: "cutoff", datetime: new Date(cutoff).toISOString(), text: formatTime(cutoff) }),
      ", so the forecast starts one step later, which can be up to 12 hours before the time it was asked to predict from.",
    ),
  );
}
