/*******************************************************************************
* Program:  adsl.sas
* Purpose:  Build the subject-level analysis dataset (ADSL) from SDTM DM and EX.
* Author:   Dr. Helen Carter (helen.carter@cro-analytics.example.com)
* Date:     2024-03-11
*******************************************************************************/
libname sdtm "C:\Users\hcarter\studies\ABC-301\sdtm" access=readonly;
libname adam "C:\Users\hcarter\studies\ABC-301\adam";

%include "..\macros\util.sas";

/* Derive treatment start and end dates from exposure records. */
proc sql;
    create table trt_dates as
    select usubjid,
           min(exstdtc) as trtsdtc,
           max(exendtc) as trtedtc
    from sdtm.ex
    group by usubjid;
quit;

data adam.adsl;
    merge sdtm.dm (in=in_dm) trt_dates;
    by usubjid;
    if in_dm;
    length agegr1 $10;
    if age < 65 then agegr1 = "<65";
    else agegr1 = ">=65";
    trtsdt = input(trtsdtc, yymmdd10.);
    trtedt = input(trtedtc, yymmdd10.);
    format trtsdt trtedt date9.;
    saffl = ifc(not missing(trtsdt), "Y", "N");
run;

%check_unique(ds=adam.adsl, key=usubjid);
