package store

import "database/sql"

// SQL returns the connection pool under GORM, for its statistics (a Prometheus DB stats collector).
// Do not close it: Close does.
func (db *DB) SQL() (*sql.DB, error) {
	return db.gorm.DB()
}

// SetPoolSize caps the open connections at n (and keeps as many idle); n <= 0 keeps the default
// (20 on Postgres, 8 on SQLite).
func (db *DB) SetPoolSize(n int) error {
	if n <= 0 {
		return nil
	}
	pool, err := db.gorm.DB()
	if err != nil {
		return err
	}
	pool.SetMaxOpenConns(n)
	pool.SetMaxIdleConns(n)
	return nil
}
