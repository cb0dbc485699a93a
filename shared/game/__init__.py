"""The game: pure rules over `GameState`, the offline narrator and the CrewAI flow step.

`shared.game.flow` imports CrewAI (seconds and ~190 MB): import it only where a turn runs.
"""
