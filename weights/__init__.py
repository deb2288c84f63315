"""Shipped weights (.safetensors) and their cards (.json); installed as the package lale_geo_weights."""
