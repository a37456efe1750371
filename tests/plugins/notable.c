/* notable.c - a shared object that exports no lgw_handlers table: refused. */
int lgw_not_a_table(void);

int lgw_not_a_table(void)
{
    return 42;
}
