"""Code generated from ``proto/llamarun/v1/llamarun.proto`` by ``make proto`` (grpcio-tools); do not edit."""
