import GRDB

/// The store's migrations. A migration that has shipped is never edited: changes are new migrations.
enum StoreSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-consent-history") { db in
            try db.execute(sql: """
                CREATE TABLE store_meta (
                    key TEXT PRIMARY KEY NOT NULL,
                    value ANY NOT NULL
                ) STRICT, WITHOUT ROWID;

                -- Interned purpose (kind 1), data-category (2) and source (3) names.
                CREATE TABLE keys (
                    id INTEGER PRIMARY KEY,
                    kind INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    UNIQUE (kind, name)
                ) STRICT;

                -- Append-only consent history, clustered by subject so that loading the index
                -- reads each subject's records together, in store order.
                CREATE TABLE consent_records (
                    subject TEXT NOT NULL,
                    sequence INTEGER NOT NULL,
                    purpose_id INTEGER NOT NULL REFERENCES keys (id),
                    data_id INTEGER REFERENCES keys (id),
                    choice INTEGER NOT NULL CHECK (choice IN (1, 2)),
                    recorded_at INTEGER NOT NULL,
                    expires_at INTEGER,
                    legal_basis INTEGER NOT NULL DEFAULT 0,
                    source_id INTEGER NOT NULL REFERENCES keys (id),
                    notice_version INTEGER,
                    jurisdiction TEXT,
                    evidence TEXT,
                    stored_at INTEGER NOT NULL,
                    PRIMARY KEY (subject, sequence)
                ) STRICT, WITHOUT ROWID;
                CREATE UNIQUE INDEX consent_records_by_sequence ON consent_records (sequence);

                -- The first result of every write made with an idempotency key.
                CREATE TABLE idempotency_keys (
                    key TEXT PRIMARY KEY NOT NULL,
                    first_sequence INTEGER NOT NULL,
                    count INTEGER NOT NULL,
                    stored_at INTEGER NOT NULL
                ) STRICT, WITHOUT ROWID;

                -- Erasure tombstones: a keyed hash of the subject id, when, how many records, and
                -- the smallest erased sequence (so other processes' indexes can find the subject).
                CREATE TABLE erasures (
                    sequence INTEGER PRIMARY KEY,
                    subject_hash TEXT NOT NULL,
                    erased_at INTEGER NOT NULL,
                    record_count INTEGER NOT NULL,
                    anchor_sequence INTEGER
                ) STRICT;
                CREATE INDEX erasures_by_hash ON erasures (subject_hash);

                INSERT INTO store_meta (key, value) VALUES ('last_sequence', 0);
                """)
        }
        migrator.registerMigration("v2-idempotency-payloads") { db in
            try db.execute(sql: """
                -- The fingerprint (SHA-256, hex) of the request a key was first used for: the same
                -- key with another payload is refused, not silently "replayed". NULL for keys
                -- stored before this migration (those cannot be checked).
                ALTER TABLE idempotency_keys ADD COLUMN payload_hash TEXT;
                -- Erasure finds the write whose run of sequences holds a record of the subject.
                CREATE INDEX idempotency_keys_by_first_sequence ON idempotency_keys (first_sequence);
                """)
        }
        migrator.registerMigration("v3-receipt-log-rows") { db in
            try db.execute(sql: """
                -- The receipts logs (chain breaks found at start-up, retired receipts files), one
                -- row per line: appending is one insert, not a rewrite of the whole log (a
                -- retirement every few seconds for months).
                CREATE TABLE receipt_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL,
                    line TEXT NOT NULL
                );
                CREATE INDEX receipt_log_by_kind ON receipt_log (kind, id);
                """)
            // The lines kept before, as one newline-separated store_meta value per log.
            for kind in ["receipt_breaks", "receipt_retired"] {
                let old = try String.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = ?", arguments: [kind]) ?? ""
                for line in old.split(separator: "\n") {
                    try db.execute(sql: "INSERT INTO receipt_log (kind, line) VALUES (?, ?)", arguments: [kind, String(line)])
                }
                try db.execute(sql: "DELETE FROM store_meta WHERE key = ?", arguments: [kind])
            }
        }
        return migrator
    }
}
