"""DARWIN behind an OpenAI-compatible HTTP API (``darwin serve``): FastAPI on uvicorn.

Needs the ``serve`` extra (``pip install 'langchain-darwin[serve]'``).
"""

from langchain_darwin.openai_api.app import ServeSettings, create_app
from langchain_darwin.openai_api.searches import Searches

__all__ = ["Searches", "ServeSettings", "create_app"]
