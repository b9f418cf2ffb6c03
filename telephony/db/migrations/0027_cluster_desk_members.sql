-- A cluster's operators' queue memberships (issue 15): each node's Asterisk holds its own
-- dynamic queue members, but an operator logs in, pauses or logs out through one line only.
-- That line writes here, per operator interface, the dynamic memberships its own Asterisk
-- then has (queue, penalty, name, pause and its reason), and NOTIFYs siaga112_desks with the
-- interface; every line brings its own Asterisk to these rows (telephony/cluster/members.py,
-- member_sync.py). An interface without a row was never changed through a cluster line and
-- is left as each Asterisk has it. A single node never writes here.
CREATE TABLE cluster_desk_members (
    operator    text PRIMARY KEY,
    members     jsonb NOT NULL DEFAULT '[]',
    node        text NOT NULL DEFAULT '',  -- the systemname of the line that wrote it
    changed_at  timestamptz NOT NULL DEFAULT now()
);
