// Two-point calibration for sensorlib sensors.
#include <algorithm>
#include <stdexcept>
#include <vector>

extern "C" {
#include "sensor.h"
}

namespace sensorlib {

struct Reference {
    double measured;
    double actual;
};

// Fit offset so that the mean error against the reference points is zero.
int16_t fit_offset_centi(const std::vector<Reference>& points) {
    if (points.empty()) {
        throw std::invalid_argument("at least one reference point is needed");
    }
    double error = 0.0;
    for (const auto& p : points) {
        error += p.actual - p.measured;
    }
    double mean = error / static_cast<double>(points.size());
    return static_cast<int16_t>(std::clamp(mean * 100.0, -32768.0, 32767.0));
}

// Apply a fitted offset to an open sensor.
void calibrate(sensor_t& sensor, const std::vector<Reference>& points) {
    sensor.offset_centi = fit_offset_centi(points);
}

}  // namespace sensorlib
