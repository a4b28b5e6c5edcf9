/* Adverse events analysis dataset (ADAE): treatment-emergent flag and study day. */
data adam.adae;
    merge sdtm.ae (in=in_ae) adam.adsl (keep=usubjid trtsdt trtedt saffl);
    by usubjid;
    if in_ae and saffl = "Y";
    astdt = input(aestdtc, yymmdd10.);
    format astdt date9.;
    if not missing(astdt) then astdy = astdt - trtsdt + (astdt >= trtsdt);
    trtemfl = ifc(trtsdt <= astdt <= trtedt + 30, "Y", "N");
run;

proc freq data=adam.adae;
    where trtemfl = "Y";
    tables aesoc * aedecod / nocum nopercent;
run;
