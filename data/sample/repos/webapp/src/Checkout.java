package com.acme.storefront;

import java.math.BigDecimal;
import java.util.List;

/** Computes order totals; prices are in cents to avoid rounding errors. */
public final class Checkout {
    private Checkout() {}

    /** Sum of quantity times unit price over all lines, in cents. */
    public static long totalCents(List<long[]> lines) {
        long total = 0;
        for (long[] line : lines) {
            total = Math.addExact(total, Math.multiplyExact(line[0], line[1]));
        }
        return total;
    }

    public static BigDecimal toEuros(long cents) {
        return BigDecimal.valueOf(cents, 2);
    }
}
