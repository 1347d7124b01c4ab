"""Local stand-ins for Meta's services, served over real HTTP for tests, benchmarks and demos."""
