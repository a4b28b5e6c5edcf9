// SPDX-License-Identifier: Apache-2.0
/* Sensor access over I2C. Field contact: Aiko Tanaka, aiko.tanaka@sensorlib.example.net */
#include "sensor.h"

#include <errno.h>
#include <string.h>

#include "i2c.h"

#define REG_TEMP 0x00
#define RAW_TO_CENTI(raw) (((int32_t)(raw) * 100) / 256)

/* Open a sensor on the given bus; returns 0 or a negative errno. */
int sensor_open(sensor_t *s, uint8_t bus, uint8_t address) {
	if (s == NULL || address > 0x7f)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->bus = bus;
	s->address = address;
	s->samples = 1;
	return i2c_probe(bus, address) ? 0 : -ENODEV;
}

/* Read one temperature in 1/100 degree C, calibration offset applied. */
int sensor_read_centi(const sensor_t *s, int32_t *out_centi) {
	uint8_t buf[2];
	int rc = i2c_read_reg(s->bus, s->address, REG_TEMP, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	int16_t raw = (int16_t)((buf[0] << 8) | buf[1]);
	*out_centi = RAW_TO_CENTI(raw) + s->offset_centi;
	return 0;
}

/* Average n readings; fails on the first read error. */
int sensor_read_average(const sensor_t *s, size_t n, int32_t *out_centi) {
	int64_t sum = 0;
	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int32_t value;
		int rc = sensor_read_centi(s, &value);
		if (rc < 0)
			return rc;
		sum += value;
	}
	*out_centi = (int32_t)(sum / (int64_t)n);
	return 0;
}
