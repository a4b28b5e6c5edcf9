-- Fixture for the SQL pair set: a small shop, hand-written for codecurate.
-- Plain SQL (DuckDB and SQLite both run it): the tables, then the rows.
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price DOUBLE NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), ordered_on DATE NOT NULL);
CREATE TABLE order_items (order_id INTEGER NOT NULL REFERENCES orders(id), product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL);
INSERT INTO customers VALUES (1, 'Ada', 'UK'), (2, 'Grace', 'US'), (3, 'Linus', 'FI'), (4, 'Margaret', 'US');
INSERT INTO products VALUES (1, 'Keyboard', 'hardware', 49.0), (2, 'Mouse', 'hardware', 19.5), (3, 'Editor licence', 'software', 99.0), (4, 'Monitor', 'hardware', 189.0);
INSERT INTO orders VALUES (1, 1, '2024-01-05'), (2, 2, '2024-01-07'), (3, 1, '2024-02-11'), (4, 3, '2024-03-02');
INSERT INTO order_items VALUES (1, 1, 1), (1, 2, 2), (2, 3, 1), (3, 4, 1), (4, 2, 3), (4, 1, 1);
