package store

import "database/sql"

// SQL returns the connection pool under GORM, for its statistics (a Prometheus DB stats collector).
// Do not close it: Close does.
func (db *DB) SQL() (*sql.DB, error) {
	return db.gorm.DB()
}
