"""The web app: the agent console, the FAQ editor and the lead view (FastAPI, server-rendered Jinja2 pages)."""
