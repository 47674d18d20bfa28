"""Training mode: new agents practise on a closed copy of live operation (its own database and sandbox X, the
live desk's published FAQ) while a scenario replays recorded traffic, and each trainee gets a scorecard."""
