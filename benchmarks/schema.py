"""The columns of the generated data, shared by gen.py, run.py and worker.py.

Kept free of heavy imports: worker.py loads it in the process whose peak memory is measured.
"""

# Column name -> kind.  run.py derives the DuckDB and Polars queries from this,
# so the competing queries always cover exactly the generated columns.
COLUMNS: dict[str, str] = {
    "id": "int",
    "user_id": "key",  # high-cardinality string such as u-3f9a1c2b7d; about 2 % empty
    "created": "timestamp",  # YYYY-MM-DD HH:MM:SS; about 2 % empty
    "amount": "float",  # about 3 % empty (null)
    "quantity": "int",
    "discount": "float",  # about 2 % empty
    "flag": "bool",
    "day": "date",  # YYYY-MM-DD
    "category": "category",  # low-cardinality string
    "city": "category",  # mostly "City, ST": quoted because of the comma; about 2 % empty
    "rating": "int",  # 1..5; about 2 % empty
    "note": "text",  # free text; some fields quoted (commas, quotes, newlines)
}


def polars_schema(pl) -> dict:
    """Polars types of the columns; the module is passed in so that importing this file stays cheap."""
    types = {"int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean, "date": pl.Date,
             "timestamp": pl.Datetime("us"), "key": pl.String, "category": pl.String, "text": pl.String}
    return {column: types[kind] for column, kind in COLUMNS.items()}
