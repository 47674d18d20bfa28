"""The Rasa NLU service: training data to model (training), the server process (server), the HTTP
client (client) and evaluation on held-out data (evaluation, service)."""
