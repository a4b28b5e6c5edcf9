# -*- coding: latin-1 -*-
# Ancienne version: facture créée par le café
TVA = 0.2
