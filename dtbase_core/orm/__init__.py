"""ORM tables, one module per area. Importing this package registers them all."""

from dtbase_core.orm.alerts import Alert, AlertRule, AlertSeries, AlertTick, AlertTransition
from dtbase_core.orm.apikeys import ApiKey
from dtbase_core.orm.assets import Annotation, Asset, AssetMove, AssetSensor, AssetType
from dtbase_core.orm.audit import AuditEvent
from dtbase_core.orm.base import Base, Datatype, HttpMethod
from dtbase_core.orm.csv_uploads import CsvUploadPart
from dtbase_core.orm.derived import DerivedMeasure
from dtbase_core.orm.locations import (
    Location,
    LocationIdentifier,
    LocationSchema,
    LocationSchemaIdentifier,
    location_value_tables,
)
from dtbase_core.orm.models import (
    Model,
    ModelMeasure,
    ModelProduct,
    ModelRun,
    ModelScenario,
    model_value_tables,
)
from dtbase_core.orm.notifications import (
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
)
from dtbase_core.orm.sensors import (
    Sensor,
    SensorLocation,
    SensorMeasure,
    SensorType,
    SensorTypeMeasure,
    reading_rollup,
    reading_rollup_daily,
    reading_tables,
)
from dtbase_core.orm.services import (
    Service,
    ServiceParameterSet,
    ServiceRunLog,
    ServiceSchedule,
    ServiceScheduleOccurrence,
)
from dtbase_core.orm.telemetry import TelemetryDeadLetter
from dtbase_core.orm.users import LoginThrottle, User

__all__ = [
    "Alert",
    "AlertRule",
    "AlertSeries",
    "AlertTick",
    "AlertTransition",
    "Annotation",
    "ApiKey",
    "Asset",
    "AssetMove",
    "AssetSensor",
    "AssetType",
    "AuditEvent",
    "Base",
    "CsvUploadPart",
    "Datatype",
    "DerivedMeasure",
    "HttpMethod",
    "Location",
    "LocationIdentifier",
    "LocationSchema",
    "LocationSchemaIdentifier",
    "LoginThrottle",
    "Model",
    "ModelMeasure",
    "ModelProduct",
    "ModelRun",
    "ModelScenario",
    "NotificationAttempt",
    "NotificationChannel",
    "NotificationDelivery",
    "Sensor",
    "SensorLocation",
    "SensorMeasure",
    "SensorType",
    "SensorTypeMeasure",
    "Service",
    "ServiceParameterSet",
    "ServiceRunLog",
    "ServiceSchedule",
    "ServiceScheduleOccurrence",
    "TelemetryDeadLetter",
    "User",
    "location_value_tables",
    "model_value_tables",
    "reading_rollup",
    "reading_rollup_daily",
    "reading_tables",
]
