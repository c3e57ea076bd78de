"""OpenMeter v1/v2 wire models (camelCase), converting to and from service inputs/outputs."""
