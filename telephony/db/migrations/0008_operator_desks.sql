-- Operator desks: which Asterisk interface (the operator's phone) an operator account works at.
-- The console logs that interface in and out of the queues of its skills (operator_skills,
-- 0001) with AMI, and shows the calls ringing or answered there. One account per interface and
-- one interface per account: a call answered at an interface belongs on one person's screen.
-- SQL for these lives in telephony/db/desks.py.

CREATE TABLE account_operators (
    account_id  bigint PRIMARY KEY REFERENCES accounts (account_id) ON DELETE CASCADE,
    -- The pattern mirrors telephony/operators.py: an interface is spliced into AMI actions.
    operator    text NOT NULL UNIQUE REFERENCES operators (operator)
                CHECK (operator ~ '^PJSIP/[A-Za-z0-9_.-]{1,64}$')
);

-- The last calls answered at an interface, for its operator's screen.
CREATE INDEX calls_operator_answered_idx ON calls (operator, answered_at)
    WHERE operator IS NOT NULL;
