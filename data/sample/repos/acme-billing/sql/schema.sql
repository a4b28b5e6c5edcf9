-- Billing schema: customers, invoices and their line items.
CREATE TABLE customers (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
    number      TEXT PRIMARY KEY,
    customer_id BIGINT NOT NULL REFERENCES customers (id),
    tax_rate    NUMERIC(5, 4) NOT NULL DEFAULT 0,
    issued_on   DATE NOT NULL,
    paid_on     DATE
);

CREATE TABLE line_items (
    invoice_number TEXT NOT NULL REFERENCES invoices (number) ON DELETE CASCADE,
    position       INT NOT NULL,
    description    TEXT NOT NULL,
    quantity       INT NOT NULL CHECK (quantity > 0),
    unit_price     NUMERIC(12, 2) NOT NULL,
    PRIMARY KEY (invoice_number, position)
);

-- Open invoices with their totals, oldest first.
CREATE VIEW open_invoices AS
SELECT i.number, c.name, SUM(l.quantity * l.unit_price) * (1 + i.tax_rate) AS total
FROM invoices i
JOIN customers c ON c.id = i.customer_id
JOIN line_items l ON l.invoice_number = i.number
WHERE i.paid_on IS NULL
GROUP BY i.number, c.name, i.tax_rate, i.issued_on
ORDER BY i.issued_on;

INSERT INTO customers (name, email) VALUES ('Jonas Weber', 'jonas.weber@example.org');
