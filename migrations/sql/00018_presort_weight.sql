-- +goose Up
-- A parcel the belt pre-sorted and the sorter confirmed into a chute is never
-- scanned by hand; the waybill weight its sort read is kept with the belt's
-- answer so the bag under the chute counts its kilograms.
ALTER TABLE presort_results ADD COLUMN weight_g integer;

-- +goose Down
ALTER TABLE presort_results DROP COLUMN weight_g;
