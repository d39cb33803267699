"""A read-only OGC SensorThings API v1.1 (Part 1, Sensing) over the sensor tables
(docs/api.md, SensorThings API): entity sets in `entities`, $filter and $orderby in
`filters`, paths and the other query options in `query`."""
