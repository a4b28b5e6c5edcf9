/* produced by the build; never edit */
int sensor_build_id = 42;
