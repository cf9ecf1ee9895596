"""The structured logger (Powertools): JSON lines with session_id/ordinal appended per unit."""

from aws_lambda_powertools import Logger

logger = Logger(service="chute")
