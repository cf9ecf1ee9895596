"""Chat model clients: any OpenAI-compatible endpoint, or Amazon Bedrock Converse.

Imported only where a model is called (the worker running a prompts row): httpx stays out of the
API function's cold start.
"""

from chalicelib.model.base import ChatRequest, Completion, Message, ModelClient
from chalicelib.model.build import build_model_client

__all__ = ["ChatRequest", "Completion", "Message", "ModelClient", "build_model_client"]
