-- A seat's label follows from its number (shared/seating.py), so the primary key already
-- makes labels unique per event, and every lookup now goes by number. The (event_id, label)
-- index cost a third of the time to create an event's seats (1,000,000 seats: 17 s -> 11 s
-- on a slow day of the benchmark machine; docs/performance.md).
ALTER TABLE seats DROP CONSTRAINT seats_event_id_label_key;
