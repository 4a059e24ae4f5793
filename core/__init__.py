"""The method as a plain library: no web, database or queue imports."""
