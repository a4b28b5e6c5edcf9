/*
 * sensorlib: reading and calibrating I2C temperature sensors.
 * Copyright (c) 2023 Lukas Brandt <lukas.brandt@sensorlib.example.net>
 */
#ifndef SENSORLIB_SENSOR_H
#define SENSORLIB_SENSOR_H

#include <stdint.h>
#include <stddef.h>

typedef struct {
    uint8_t  bus;
    uint8_t  address;
    int16_t  offset_centi;   /* calibration offset in 1/100 degree C */
    uint16_t samples;        /* samples averaged per reading */
} sensor_t;

int sensor_open(sensor_t *s, uint8_t bus, uint8_t address);
int sensor_read_centi(const sensor_t *s, int32_t *out_centi);
int sensor_read_average(const sensor_t *s, size_t n, int32_t *out_centi);
void sensor_close(sensor_t *s);

#endif /* SENSORLIB_SENSOR_H */
