"""One router per resource: score, entities, anomalies, models, health."""
