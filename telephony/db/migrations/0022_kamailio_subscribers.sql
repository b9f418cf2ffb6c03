-- The SIP front of a cluster (kamailio-conf/kamailio.cfg) authenticates registering operator
-- phones with the same digest the Asterisk nodes use, MD5(username:realm:secret), read through
-- this view by the same read-only role as the ps_* views (granted by the line at start,
-- telephony/desks/store.py), under the column names Kamailio's auth_db asks for.
CREATE VIEW kamailio_subscribers AS
    SELECT substr(operator, 7) AS username, realm AS domain, md5_cred AS ha1
    FROM phone_secrets;
