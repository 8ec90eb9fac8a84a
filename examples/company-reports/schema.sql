-- Reports with an event monitor (a FastAPI service): every company has its own schema,
-- company_<id>, with the same tables; `act` holds its accounting entries (append-only:
-- corrections are new, reversing entries). The service caches each company's reports
-- (balance, P&L, ledgers) under reports:<id>:... and used to poll max(id_act) per company
-- to notice new entries.
CREATE TABLE IF NOT EXISTS public.companies (
    id   integer PRIMARY KEY,
    name text NOT NULL
);

-- What the service's onboarding runs for a new company.
CREATE OR REPLACE FUNCTION public.create_company(company_id integer, company_name text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.companies VALUES (company_id, company_name) ON CONFLICT (id) DO NOTHING;
  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', 'company_' || company_id);
  EXECUTE format($f$
    CREATE TABLE IF NOT EXISTS %I.act (
        id_act    bigserial PRIMARY KEY,
        account   text NOT NULL,          -- e.g. 512000 (bank), 411000 (customers)
        amount    numeric(14,2) NOT NULL, -- debit > 0, credit < 0
        booked_on date NOT NULL,
        label     text
    )$f$, 'company_' || company_id);
END $$;

SELECT public.create_company(7, 'Atelier Sept');
SELECT public.create_company(42, 'Quarante-Deux SARL');
SELECT public.create_company(43, 'Lumen SA');
